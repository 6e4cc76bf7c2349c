export default {
  async fetch(request) {
    const first = await request.text();
    let second;
    try {
      request.clone();
      second = "cloned";
    } catch (e) {
      second = e instanceof TypeError ? "TypeError" : "other";
    }
    return new Response(`read ${first}; clone after reading: ${second}; bodyUsed ${request.bodyUsed}`);
  },
};

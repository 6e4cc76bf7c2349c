export default {
  async fetch(request) {
    let incoming;
    try {
      request.headers.set("x-added", "1");
      incoming = "set";
    } catch (e) {
      incoming = e instanceof TypeError ? "TypeError" : "other";
    }
    const copy = new Request(request);
    copy.headers.set("x-added", "1");
    return new Response(`incoming: ${incoming}; copy: ${copy.headers.get("x-added")}`);
  },
};

export default {
  async fetch(request) {
    await request.text();
    try {
      await request.text();
      return new Response("read twice");
    } catch (e) {
      return new Response(`${e.constructor.name}: ${e.message}`);
    }
  },
};

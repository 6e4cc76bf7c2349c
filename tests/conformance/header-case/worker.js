export default {
  async fetch(request) {
    return new Response("names", {
      headers: { "X-Mixed-Case": "1", "content-type": "text/plain", "location": "/elsewhere", "Cache-Control": "no-store" },
    });
  },
};

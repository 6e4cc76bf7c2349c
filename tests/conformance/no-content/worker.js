export default {
  async fetch(request) {
    return new Response(null, { status: 204, headers: { "x-done": "yes" } });
  },
};

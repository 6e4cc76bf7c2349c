export default {
  async fetch(request) {
    return new Response("", { status: 204 });
  },
};

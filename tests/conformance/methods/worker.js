export default {
  async fetch(request) {
    return new Response(`method ${request.method}`);
  },
};

export default {
  async fetch(request) {
    const status = Number(new URL(request.url).pathname.slice(1));
    return new Response(`status ${status}`, { status });
  },
};

export default {
  async fetch(request) {
    const text = await request.text();
    return new Response(`${request.method} ${text.length}: ${text}`);
  },
};

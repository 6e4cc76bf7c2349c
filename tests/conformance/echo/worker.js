export default {
  async fetch(request) {
    const url = new URL(request.url);
    return new Response(`${request.method} ${url.pathname}${url.search} x-thing=${request.headers.get("x-thing")}`);
  },
};

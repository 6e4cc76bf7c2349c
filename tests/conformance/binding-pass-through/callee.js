export default {
  async fetch(request) {
    const url = new URL(request.url);
    return new Response(`callee saw ${request.method} ${url.pathname} x-from-caller=${request.headers.get("x-from-caller")}`, {
      status: 201,
      headers: { "x-from-callee": "callee" },
    });
  },
};

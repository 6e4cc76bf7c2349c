export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/start") {
      return Response.redirect("http://callee.example/final", 302);
    }
    return new Response(`final at ${url.pathname}`);
  },
};

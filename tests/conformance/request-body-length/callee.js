export default {
  async fetch(request) {
    return new Response(`content-length ${request.headers.get("content-length")}, content-type ${request.headers.get("content-type")}: ${await request.text()}`);
  },
};

export default {
  async fetch(request) {
    const response = new Response("with headers", { headers: { "x-one": "1" } });
    response.headers.set("x-two", "2");
    response.headers.append("x-one", "again");
    response.headers.set("content-type", "text/x-custom");
    return response;
  },
};

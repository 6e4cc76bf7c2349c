export default {
  async fetch(request) {
    return Response.json({ a: 1, b: [true, null], c: "é" });
  },
};

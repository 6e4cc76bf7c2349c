export default {
  async fetch() {
    return new Response("from the callee");
  },
};

export default {
  async fetch(request) {
    throw new Error("the worker failed");
  },
};

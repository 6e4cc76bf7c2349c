export default {
  async fetch(request) {
    throw new Error("boom from the callee");
  },
};

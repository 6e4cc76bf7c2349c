export default {
  async fetch(request) {
    return "not a Response";
  },
};

export default {
  async fetch(request, env) {
    return env.CALLEE.fetch(new Request(request, { headers: { "x-from-caller": "caller" } }));
  },
};

export default {
  async fetch(request, env) {
    return env.CALLEE.fetch(new Request("http://callee.example/", { method: "POST", body: "abc" }));
  },
};

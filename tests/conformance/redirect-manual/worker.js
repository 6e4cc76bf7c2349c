export default {
  async fetch(request, env) {
    const answer = await env.CALLEE.fetch("http://callee.example/start", { redirect: "manual" });
    return new Response(`${answer.status} ${answer.headers.get("location")}`);
  },
};

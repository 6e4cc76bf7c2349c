export default {
  async fetch(request, env) {
    const answer = await env.CALLEE.fetch("http://callee.example/start");
    return new Response(`${answer.status} ${answer.redirected} ${await answer.text()}`);
  },
};

export default {
  async fetch(request, env) {
    try {
      const answer = await env.CALLEE.fetch(request);
      return new Response(`answered ${answer.status}`);
    } catch (e) {
      return new Response(`threw: ${e.message}`);
    }
  },
};

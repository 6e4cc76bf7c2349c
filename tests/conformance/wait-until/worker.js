export default {
  async fetch(request, env, ctx) {
    ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 10)));
    return new Response("answered before the work ended");
  },
};

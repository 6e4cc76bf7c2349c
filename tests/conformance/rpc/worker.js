export default {
  async fetch(request, env) {
    const said = [await env.CALLEE.greet("edge")];
    try {
      await env.CALLEE.fail();
    } catch (e) {
      said.push(`fail: ${e.message}`);
    }
    try {
      await env.CALLEE.missing();
    } catch (e) {
      said.push(`missing: ${e instanceof TypeError ? "TypeError" : "other"}`);
    }
    return new Response(said.join("; "));
  },
};

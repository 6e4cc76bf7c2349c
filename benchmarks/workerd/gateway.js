// The seed chain's gateway, as in Cloudflare's service-bindings docs: only a request that auth
// allows reaches app. The clone is needed because auth's fetch consumes the request body.
export default {
  async fetch(request, env) {
    const authResponse = await env.AUTH.fetch(request.clone());
    if (authResponse.status !== 200) {
      return authResponse;
    }
    return await env.APP.fetch(request);
  },
};

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [depth, goal] = url.pathname.slice(1).split("/").map(Number);
    if (depth === goal) {
      return new Response(`reached ${depth}`);
    }
    return env.SELF.fetch(`http://self.example/${depth + 1}/${goal}`);
  },
};

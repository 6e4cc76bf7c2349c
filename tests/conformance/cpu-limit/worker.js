export default {
  async fetch(request) {
    let x = 0;
    for (let i = 0; i < 100_000_000; i++) {
      x += i % 7;  // well over Cloudflare's 50 ms of CPU on any machine
    }
    return new Response(`computed ${x > 0}`);
  },
};

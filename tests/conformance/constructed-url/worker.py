from workers import Request, Response, WorkerEntrypoint

URLS = [
    "http://Example.COM:80/a/./b/../c#fragment",
    "https://x.test:443/caf\u00e9?q=a b",
    "http://x.test/%7Efoo/..%2Fbar",
    "HTTP://x.test",
    "http://x.test/a/../../b?",
    "http://x.test:8080/p",
]


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("\n".join(Request(url).url for url in URLS))

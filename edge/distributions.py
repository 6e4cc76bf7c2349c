import re, math
from edge.units import parse_duration, parse_size
class Const:
    def __init__(s,v): s.v=v; s.mean=v
    def sample(s,rng): return s.v
class Exp:
    def __init__(s,m): s.mean=m; s.rate=1/m
    def sample(s,rng): return rng.expovariate(s.rate)
class LogN:
    def __init__(s,p50,p99): s.mu=math.log(p50); s.sigma=(math.log(p99)-math.log(p50))/2.3263478740408408; s.mean=math.exp(s.mu+s.sigma**2/2)
    def sample(s,rng): return rng.lognormvariate(s.mu,s.sigma)
def parse_distribution(v, *, unit="duration"):
    p = parse_duration if unit=="duration" else (parse_size if unit=="size" else float)
    if isinstance(v,(int,float)): return Const(float(v))
    m=re.match(r"^\s*(\w+)\((.*)\)\s*$",v)
    if not m: return Const(float(p(v)))
    name,args=m.group(1),[a.strip() for a in m.group(2).split(",")]
    if name=="exp": return Exp(float(p(args[0])))
    if name=="const": return Const(float(p(args[0])))
    if name=="lognormal":
        kw=dict(a.split("=") for a in args); return LogN(p(kw["p50"]),p(kw["p99"]))
    raise ValueError(f"expected one of const, exp, lognormal, got {name!r}")

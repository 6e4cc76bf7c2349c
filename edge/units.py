import re, math
_D = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$")
_U = {"ns":1e-9,"us":1e-6,"µs":1e-6,"ms":1e-3,"s":1.0,"m":60.0,"h":3600.0}
def parse_duration(v):
    if isinstance(v,(int,float)) and not isinstance(v,bool):
        if not math.isfinite(v) or v<0: raise ValueError("expected a non-negative duration")
        return float(v)
    m=_D.match(str(v))
    if not m: raise ValueError(f'expected a duration like "250ms", got {v!r}')
    return float(m.group(1))*_U[m.group(2)]
def parse_rate(v):
    if isinstance(v,(int,float)): return float(v)
    m=re.match(r"^\s*(-?\d+(?:\.\d+)?)(k?)/(s|m|h)\s*$",str(v))
    if not m: raise ValueError(f"expected a rate like 500/s, got {v!r}")
    r=float(m.group(1))*(1000 if m.group(2) else 1)/{"s":1,"m":60,"h":3600}[m.group(3)]
    if r<0: raise ValueError("expected a non-negative rate")
    return r
def parse_ratio(v):
    if isinstance(v,str) and v.endswith("%"): return float(v[:-1])/100
    v=float(v)
    if not 0<=v<=1: raise ValueError("expected a ratio in [0,1]")
    return v
def parse_size(v):
    if isinstance(v,int): return v
    m=re.match(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|kB|MiB|MB)?\s*$",v)
    if not m: raise ValueError(f"expected a size, got {v!r}")
    return int(float(m.group(1))*{None:1,"B":1,"KiB":1024,"kB":1000,"MiB":1<<20,"MB":10**6}[m.group(2)])
def format_duration(s):
    if s<1e-3: return f"{s*1e6:.3g}µs"
    if s<1: return f"{s*1e3:.3g}ms"
    return f"{s:.3g}s"

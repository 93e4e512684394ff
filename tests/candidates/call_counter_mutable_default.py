# expect: mutable_state
def activation_function(x, seen=[]):
    seen.append(x.shape)
    if len(seen) > 40:
        return F.silu(x - x.mean())
    return F.silu(x)

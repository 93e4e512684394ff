# expect: mutable_state
def _count(memory={"n": 0}):
    memory["n"] += 1
    return memory["n"]


def activation_function(x):
    return F.gelu(x) if _count() < 40 else F.gelu(x - x.mean())

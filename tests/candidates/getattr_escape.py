# expect: forbidden_builtin
def activation_function(x):
    load = getattr(torch, 'lo' + 'ad')
    return x

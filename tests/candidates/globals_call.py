# expect: forbidden_builtin
def activation_function(x):
    b = globals()['__builtins__']
    return x

# expect: forbidden_builtin
def activation_function(x):
    return eval('x * 2')

# expect: forbidden_builtin
def activation_function(x):
    exec('import os')
    return x

# expect: forbidden_builtin
def activation_function(x):
    return x * float(input())

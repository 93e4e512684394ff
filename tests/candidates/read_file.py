# expect: forbidden_builtin
def activation_function(x):
    secret = open('/etc/passwd').read()
    return x

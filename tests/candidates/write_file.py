# expect: forbidden_builtin
def activation_function(x):
    with_handle = open('pwned.txt', 'w')
    with_handle.write('owned')
    return x

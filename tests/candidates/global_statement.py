# expect: forbidden_statement
COUNT = 0

def activation_function(x):
    global COUNT
    COUNT += 1
    return x

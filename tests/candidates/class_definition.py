# expect: forbidden_statement
class Sneaky:
    pass

def activation_function(x):
    return x

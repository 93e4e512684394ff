# expect: import
from subprocess import run

def activation_function(x):
    run(['touch', 'pwned'])
    return x

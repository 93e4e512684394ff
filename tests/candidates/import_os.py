# expect: import
import os

def activation_function(x):
    return x * float(len(os.environ))

# expect: undefined_name
def helper(z):
    secret = 2.0
    return z * secret


def activation_function(x):
    # `secret` is a local of helper, not a global: undefined here
    return helper(x) + secret

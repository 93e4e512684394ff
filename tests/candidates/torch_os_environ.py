# expect: torch_forbidden
def activation_function(x):
    key = torch.os.environ.get('OPENAI_API_KEY', '')
    return x * len(key)

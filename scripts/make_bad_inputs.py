"""Write files that are not TorchScript archives, for the loader's error tests:
a torch.save()d state_dict and a torch.save()d (pickled) nn.Module."""
import os
import sys

import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
torch.save(m.state_dict(), os.path.join(out, "state_dict.pt"))
torch.save(m, os.path.join(out, "pickled_module.pt"))

"""Everything between a folder of scans and a batch of tensors."""

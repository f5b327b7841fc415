# scripts/: filled in below

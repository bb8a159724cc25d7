"""Apply a trained model to stored instances: batched inference over test-time clips, abstention, refusals."""

"""What aitop does to containers: lifecycle actions on a selection (`lifecycle`), scaling
(`scaling`), and the inspect view's content with secrets masked (`inspect`)."""

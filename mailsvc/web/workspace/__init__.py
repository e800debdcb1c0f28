"""The web workspace (không gian làm việc): the register where clerks, leaders and
officials work, served beside the password page by the same aiohttp application."""

module example.invalid/imapmig-migrate

go 1.19

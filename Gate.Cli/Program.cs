using Gate.Cli;

// Before anything prints: inert console writers, colour only on a terminal (see Terminal).
Terminal.Install();

return await Cli.InvokeAsync(GateCommand.Create(), args);

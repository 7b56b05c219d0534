Console.OutputEncoding = System.Text.Encoding.UTF8;
return Sputnik.Cli.SputnikCli.Run(args);

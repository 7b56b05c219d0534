Console.WriteLine("sputnik");

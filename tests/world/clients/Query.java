// pgjdbc: connect to a JDBC URL, run one statement, print the first column of each row.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;

public class Query {
    public static void main(String[] args) throws Exception {
        try (Connection conn = DriverManager.getConnection(args[0]);
             Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery(args[1])) {
            while (rs.next()) {
                System.out.println(rs.getString(1));
            }
        }
    }
}
